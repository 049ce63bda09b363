"""mitmproxy script of the installed package:
`mitmdump -s "$(python -m mitmdatakit.script)" [--set datakit_config=PATH]`.

Defaults: the example workflows shipped in the package, and mitmproxy's own
confdir (`~/.mitmproxy`) for the CA. The repository's `addon/datakit.py`
uses the checkout's `workflows/` and `certs/` instead.
"""

from mitmdatakit.addon import Datakit

addons = [Datakit()]
