"""pyfed on Flower: the same ``Algorithm`` objects as the simulator, as a Flower ServerApp + ClientApp.

``AlgorithmStrategy`` (strategy.py) wraps any algorithm; ``client_app`` (client.py) runs one client
update; ``server_app`` / ``make_server_app`` / ``flower_simulate`` (app.py) run it with ``flwr run``,
a custom server main, or Flower's simulation engine. Needs the ``fed`` extra (flwr[simulation]).
"""

from pyfed.flower.app import (
    client_app,
    config_from_run_config,
    default_backend_config,
    flower_simulate,
    make_server_app,
    server_app,
)
from pyfed.flower.strategy import AlgorithmStrategy

__all__ = [
    "AlgorithmStrategy",
    "client_app",
    "config_from_run_config",
    "default_backend_config",
    "flower_simulate",
    "make_server_app",
    "server_app",
]
