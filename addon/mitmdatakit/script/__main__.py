"""`python -m mitmdatakit.script`: print the path of the mitmproxy script."""

from . import PATH

print(PATH)
