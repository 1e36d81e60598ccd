"""The `vision-ai` command-line client: talks to the service over HTTP only.

A package of its own, apart from serve_app: it shares no code with the server and needs only
`requests` and `tqdm`, so it never imports Ray or torch and could ship on its own.
"""
