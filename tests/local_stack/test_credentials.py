"""Passwords, SCRAM verifiers and URLs (pure; real logins with them are in test_postgres)."""

from __future__ import annotations

from connstorm.local_stack.credentials import make_dsn, mask_dsn, new_password, scram_verifier


def test_new_password_is_long_random_and_url_safe() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 32 and p.replace("-", "").replace("_", "").isalnum()
               for p in passwords)


def test_scram_verifier_matches_rfc7677_test_vector() -> None:
    # RFC 7677's example: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==
    import base64

    verifier = scram_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert verifier == ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")


def test_mask_dsn_hides_only_the_password() -> None:
    dsn = make_dsn("app", "s3cret", "127.0.0.1", 5432, "app")
    assert dsn == "postgresql://app:s3cret@127.0.0.1:5432/app"
    assert mask_dsn(dsn) == "postgresql://app:***@127.0.0.1:5432/app"
    assert mask_dsn("host=x password=s3cret user=app") == "host=x password=*** user=app"
    assert mask_dsn(None) is None
