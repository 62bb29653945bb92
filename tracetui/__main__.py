"""`python -m tracetui`."""

from tracetui.cli import entry

if __name__ == "__main__":
    entry()
