"""The ``wsicell`` command line: thin commands over the library.

Each command lives in its own module and imports its heavy dependencies (torch, faiss,
dask.distributed, tiatoolbox) inside the command, so ``wsicell --help`` stays instant.
"""

from __future__ import annotations

from wsicell import openmp

openmp.settle()  # before anything imports torch (wsicell/openmp.py)

import click  # noqa: E402

from wsicell import __version__  # noqa: E402
from wsicell.cli import cluster, embed, evaluate, extract, info, map, study, train  # noqa: E402


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: wsicell extract slides/ --store cells.zarr && wsicell train --store cells.zarr --out runs/ccrl",
)
@click.version_option(__version__, prog_name="wsicell")
def main() -> None:
    """Turn H&E whole-slide images into label-free cell-type maps.

    extract -> train -> embed -> cluster -> map, each step reading and writing one Zarr
    cell store. Run `wsicell COMMAND --help` for a command's options and an example.
    """


for _module in (extract, info, train, embed, cluster, map, study, evaluate):
    for _command in _module.COMMANDS:
        main.add_command(_command)
