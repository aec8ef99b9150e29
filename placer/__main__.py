"""`python -m placer`: the placer (its health on PLACER_PORT, the deliveries from its sidecar on
PLACER_GRPC_PORT), and its metrics on PLACER_METRICS_PORT."""

from core.config import settings
from core.serving import Server, run

if __name__ == "__main__":
    run(
        Server(
            app="placer.main:app",
            host=settings.PLACER_HOST,
            port=settings.PLACER_PORT,
            metrics_port=settings.PLACER_METRICS_PORT,
        )
    )
