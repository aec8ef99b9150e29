"""`python -m exchange`: the shared exchange stand-in on EXCHANGE_HOST:EXCHANGE_PORT."""

import uvicorn

from core.config import settings
from core.logs import configure_logging
from exchange.config import exchange_settings

if __name__ == "__main__":
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    uvicorn.run(
        "exchange.main:app",
        host=exchange_settings.EXCHANGE_HOST,
        port=exchange_settings.EXCHANGE_PORT,
        access_log=False,
        log_config=None,  # keep configure_logging's lines
    )
