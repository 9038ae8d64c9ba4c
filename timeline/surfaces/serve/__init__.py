"""`timeline serve`: a read-only local web app over the public API (docs/serve.md).

Starlette, Jinja2 and uvicorn come with the optional extra `[serve]`; only `command` is
imported when the CLI builds its parser, and it imports the rest when the server starts.
"""
