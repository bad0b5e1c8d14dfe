"""Play a world model in the browser: FastAPI server, websocket sessions, the static page."""
