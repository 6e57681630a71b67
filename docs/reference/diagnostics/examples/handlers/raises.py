"""Fails at import time, as code that reads missing configuration does."""


def _load_config() -> None:
    raise RuntimeError("MODEL_URL is not set")


_load_config()


def handle(payload: object, ctx: object) -> object:
    return payload
