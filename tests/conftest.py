import pytest
from click.testing import CliRunner

from adaptkit.cli import cli


@pytest.fixture(autouse=True)
def no_real_gpus(monkeypatch):
    """Tests see no GPU unless they say otherwise, whatever machine runs them."""
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "0")


@pytest.fixture
def invoke():
    def run(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input)

    return run
