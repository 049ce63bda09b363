"""Kong's own entities: a declarative (decK) file loaded as Kong would run
it (`declarative`), its router (`router`), proxying to a route's service
(`proxying`), the mitmproxy hooks that do both (`gateway`), and workflows
written back as a decK file (`export`)."""
