"""`lmforge serve`: trained runs behind an OpenAI-compatible HTTP API (FastAPI, uvicorn)."""
