"""mitmproxy script: `mitmdump -s addon/datakit.py [--set datakit_config=PATH]`.

Thin on purpose: the engine is the `mitmdatakit` package next to this file.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also works without the package installed
    sys.path.insert(0, str(HERE))

from mitmdatakit.addon import Datakit  # noqa: E402

addons = [Datakit(default_config=str(HERE.parent / "workflows"), certs_dir=str(HERE.parent / "certs"))]
