"""``python -m wsicell`` is the ``wsicell`` command."""

from wsicell.cli import main

if __name__ == "__main__":
    main()
