"""Diffs of files with secrets show that a secret line changed, never either value."""

from __future__ import annotations

import pytest

from haops.secrets import mask_pair
from haops.targets import get_target
from haops.targets.base import RenderedFile

pytestmark = pytest.mark.unit


def test_changed_secret_shows_as_changed_without_values() -> None:
    file = RenderedFile("/etc/x", "a\n    stats auth admin:new-pw\nb\n", secrets=("new-pw",))
    new, old = mask_pair(file, "a\n    stats auth admin:old-pw\nb\n", get_target("haproxy").secret_lines)
    assert new == "a\n    stats auth admin:********\nb\n"
    assert old == "a\n    stats auth admin:******** (old value)\nb\n"


def test_unchanged_secret_masks_alike() -> None:
    file = RenderedFile("/etc/x", "auth_pass s3cret\n", secrets=("s3cret",))
    new, old = mask_pair(file, "auth_pass s3cret\nother\n", get_target("keepalived").secret_lines)
    assert new == "auth_pass ********\n" and old == "auth_pass ********\nother\n"


@pytest.mark.parametrize("target, old, new, secret", [
    ("haproxy", "    stats auth olduser:OldSecret1\n", "    stats auth admin:NewSecret\n", "NewSecret"),
    ("haproxy", "    stats auth admin:OldSecret1\n", "    bind :80\n", None),
    ("keepalived", "\t\tauth_pass OldPass\n", "    auth_pass NewPass\n", "NewPass"),
    ("drbd", '    shared-secret "Old-Secret";\n', '        shared-secret "New-Secret";\n', "New-Secret"),
])
def test_old_values_haops_never_rendered_stay_hidden(target: str, old: str, new: str, secret: str | None) -> None:
    """The user, the indentation or the whole directive changed: neither value shows."""
    file = RenderedFile("/etc/x", new, secrets=(secret,) if secret else ())
    masked_new, masked_old = mask_pair(file, old, get_target(target).secret_lines)
    assert "Old" not in masked_old and "********" in masked_old and masked_old.endswith("(old value)\n")
    assert "New" not in masked_new
