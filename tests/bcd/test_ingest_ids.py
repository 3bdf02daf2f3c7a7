"""Pseudonymous exam ids: salted, stable, and never the patient's identifiers."""

from __future__ import annotations

import hashlib
import stat

from bcd.ingest.ids import assign_ids, kept_id, pseudonym, resolve_salt, salt_file


def test_pseudonym_is_the_salted_sha256_prefix():
    expected = hashlib.sha256(b"pepper\x001.2.3").hexdigest()[:12]
    assert pseudonym("pepper", "1.2.3") == f"ex-{expected}"
    assert pseudonym("salt", "1.2.3") != pseudonym("pepper", "1.2.3")


def test_salt_comes_from_the_flag_then_the_environment_then_a_kept_file(tmp_path, monkeypatch):
    dst = tmp_path / "out"
    monkeypatch.setenv("BCD_ID_SALT", "from-env")
    assert resolve_salt("from-flag", dst) == ("from-flag", "--salt")
    assert resolve_salt(None, dst) == ("from-env", "$BCD_ID_SALT")
    monkeypatch.delenv("BCD_ID_SALT")
    salt, where = resolve_salt(None, dst)
    assert where.endswith("out.salt (new)") and len(salt) == 32
    assert salt_file(dst) == tmp_path / "out.salt"
    assert stat.S_IMODE(salt_file(dst).stat().st_mode) == 0o600
    assert resolve_salt(None, dst)[0] == salt


def test_kept_ids_are_sanitised_or_refused():
    assert kept_id("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    assert kept_id("Smith^John/01 2019") == "Smith_John_01_2019"
    ids, refused = assign_ids(["..", "a b", "a/b", "ok"], salt=None)
    assert ids == {"ok": "ok"}
    assert "invalid exam id" in refused[".."]
    assert "2 exams would get the same id 'a_b'" in refused["a b"]
    assert refused["a b"] == refused["a/b"]


def test_pseudonymous_ids_for_every_key():
    ids, refused = assign_ids(["x", "y"], salt="s")
    assert refused == {}
    assert ids == {"x": pseudonym("s", "x"), "y": pseudonym("s", "y")}
