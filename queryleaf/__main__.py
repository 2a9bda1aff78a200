"""``python -m queryleaf``: the same as the ``queryleaf`` command."""

from queryleaf.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="queryleaf")
