"""The gateway's settings: tokens from a file or the environment, webhook secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshc.gateway.config import GatewayConfigError, Webhooks, load_secret, load_tokens

A, B = "first-token-0123456789", "second-token-0123456789"


def test_tokens_from_a_file_skip_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# callers\n{A}\n\n  {B}  \n")
    tokens = load_tokens(str(path), {})
    assert tokens.accepts(A) and tokens.accepts(B)
    assert not tokens.accepts("# callers") and not tokens.accepts("") and not tokens.accepts(A[:-1])
    assert len(tokens.digests) == 2


def test_tokens_from_the_environment(tmp_path: Path) -> None:
    tokens = load_tokens(None, {"MESHC_SERVE_TOKENS": f" {A},{B} "})
    assert tokens.accepts(A) and tokens.accepts(B) and not tokens.accepts(f"{A},{B}")
    path = tmp_path / "tokens"
    path.write_text(f"{B}\n")
    assert not load_tokens(str(path), {"MESHC_SERVE_TOKENS": A}).accepts(A)  # the file wins


def test_a_weak_token_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{A}\nshort\n")
    with pytest.raises(GatewayConfigError, match=r"tokens:2: a token must be at least 16"):
        load_tokens(str(path), {})
    path.write_text("# nothing but a comment\n")
    with pytest.raises(GatewayConfigError, match="holds no token"):
        load_tokens(str(path), {})


def test_the_webhook_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cret-0123456789abc\n")
    assert load_secret(str(path), {}) == b"s3cret-0123456789abc"
    env = {"MESHC_WEBHOOK_SECRET": "from-env-0123456789"}
    assert load_secret(None, env) == b"from-env-0123456789"
    with pytest.raises(GatewayConfigError, match="at least 16"):
        load_secret(None, {"MESHC_WEBHOOK_SECRET": "short"})
    allowed = Webhooks(b"x" * 16, allow=("https://hooks.example/a/",))
    assert allowed.allows("https://hooks.example/a/1")
    assert not allowed.allows("https://hooks.example/b") and not allowed.allows("http://x/")
