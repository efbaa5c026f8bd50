"""One client for every OpenAI-compatible endpoint: the judge, the critic, generators and evaluation."""

from .client import ChatResult, ClientStats, EndpointError, OpenAICompatClient
from .config import EndpointConfig

__all__ = ["ChatResult", "ClientStats", "EndpointConfig", "EndpointError", "OpenAICompatClient"]
