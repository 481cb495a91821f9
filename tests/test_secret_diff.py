"""Diffs of files with secrets show that a secret line changed, never either value."""

from __future__ import annotations

import pytest

from haops.apply import mask_pair
from haops.targets.base import RenderedFile

pytestmark = pytest.mark.unit


def test_changed_secret_shows_as_changed_without_values() -> None:
    file = RenderedFile("/etc/x", "a\n    stats auth admin:new-pw\nb\n", secrets=("new-pw",))
    new, old = mask_pair(file, "a\n    stats auth admin:old-pw\nb\n")
    assert new == "a\n    stats auth admin:********\nb\n"
    assert old == "a\n    stats auth admin:******** (old value)\nb\n"


def test_unchanged_secret_masks_alike() -> None:
    file = RenderedFile("/etc/x", "auth_pass s3cret\n", secrets=("s3cret",))
    new, old = mask_pair(file, "auth_pass s3cret\nother\n")
    assert new == "auth_pass ********\n" and old == "auth_pass ********\nother\n"
