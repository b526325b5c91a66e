import os
import sys

# `python -m adaptkit` puts the working folder first on the import path; a recipe must not import from it
# implicitly (name a file as path/to/file.py:function, with --allow-code, instead).
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from adaptkit.cli import main  # noqa: E402

main()
