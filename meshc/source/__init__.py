"""Read a mesh file into plain data while keeping the position of every node.

The first step of the compiler. Its modules, in the order a file goes through them:

- ``text``: the file's text (UTF-8, else MESH001) and the :class:`Source` that holds
  the data, the lines and the span of every path;
- ``positions``: where every node is, indexed in one pass when a diagnostic asks;
- ``limits``: the bounds on hostile input (MESH004);
- ``events``: PyYAML's event parser and the YAML 1.2 core schema of scalars, shared by
  both readers;
- ``fast``: the reader of the common subset of YAML, and the one statement of what
  that subset is and when a file is handed to the general reader;
- ``general``: the reader of everything else, which reports every problem at its
  position and records positions when asked;
- ``load``: :func:`load_bytes` and :func:`load_file`, which run the readers and
  index positions only when a diagnostic asks for one.
"""

from meshc.source.limits import Limits
from meshc.source.load import load_bytes, load_file
from meshc.source.positions import Path, Region
from meshc.source.text import Source

__all__ = ["Limits", "Path", "Region", "Source", "load_bytes", "load_file"]
