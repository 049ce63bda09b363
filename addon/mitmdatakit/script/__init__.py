"""The mitmproxy script of an installed `mitmdatakit` (a wheel has no
`addon/datakit.py`): `mitmdump -s "$(python -m mitmdatakit.script)"` prints
its path and loads it.

The script sits alone in this directory because mitmproxy puts a script's
directory first on `sys.path` while loading it: next to the package's own
modules (`codecs.py`, `trace.py`, ...) it would shadow the standard library.
"""

from pathlib import Path

PATH = Path(__file__).resolve().with_name("datakit.py")

__all__ = ["PATH"]
