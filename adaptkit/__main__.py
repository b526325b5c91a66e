from adaptkit.cli import main

main()
