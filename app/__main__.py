"""`python -m app`: the order API, as its settings say (development: one process that reloads
on changes; production: API_WORKERS workers), and its metrics on API_METRICS_PORT."""

from core.config import PROJECT_ROOT, Environment, settings
from core.serving import Server, run

if __name__ == "__main__":
    development = settings.ENVIRONMENT is Environment.DEVELOPMENT
    run(
        Server(
            app="app.main:app",
            host=settings.API_HOST,
            port=settings.API_PORT,
            metrics_port=settings.API_METRICS_PORT,
            workers=1 if development else settings.API_WORKERS,
            reload_dirs=[PROJECT_ROOT / "app", PROJECT_ROOT / "core"] if development else [],
            access_log=development,
            keep_alive_seconds=settings.API_KEEP_ALIVE_SECONDS,
        )
    )
