"""An edit of a mapping set applied to its base: changed, new and deleted files, and what
cannot be meant refused naming the request field."""

from __future__ import annotations

import pytest

from broker.services.mapping_changes import ChangeRefused, MappingChanges, apply_changes

BASE = {"a.yaml": "a", "b.yaml": "b"}


def test_one_edit_changes_adds_and_deletes() -> None:
    changes = MappingChanges({"a.yaml": "A"}, {"c.yaml": "c"}, ("b.yaml",))
    assert apply_changes(BASE, changes, "v1") == {"a.yaml": "A", "c.yaml": "c"}
    assert changes.describe() == "a.yaml, new c.yaml, without b.yaml"
    assert not MappingChanges() and changes
    # a changed file the base does not have is added, as before 'add' existed
    assert apply_changes(BASE, MappingChanges({"d.yaml": "d"}), "v1")["d.yaml"] == "d"


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        (MappingChanges(added={"a.yaml": "x"}), "add", "v1 already has a file 'a.yaml'"),
        (MappingChanges(added={"../a.yaml": "x"}), "add", "is not allowed"),
        (MappingChanges({"c.yaml": "1"}, {"c.yaml": "2"}), "add", "'c.yaml' is under 'files'"),
        (MappingChanges(deleted=("z.yaml",)), "delete", "v1 has no file 'z.yaml' to delete"),
        (MappingChanges(deleted=("a.yaml", "a.yaml")), "delete", "'a.yaml' is named twice"),
        (MappingChanges({"a.yaml": "A"}, deleted=("a.yaml",)), "delete", "under 'files' too"),
        (MappingChanges(deleted=("a.yaml", "b.yaml")), "delete", "keeps at least one file"),
    ],
)
def test_what_cannot_be_meant_is_refused_naming_the_field(
    changes: MappingChanges, field: str, text: str
) -> None:
    with pytest.raises(ChangeRefused) as refused:
        apply_changes(BASE, changes, "v1")
    assert refused.value.field == field and str(refused.value).startswith(f"{field}: ")
    assert text in str(refused.value)


def test_a_name_is_shown_escaped() -> None:
    with pytest.raises(ChangeRefused, match=r"no file 'x\\\\n\.yaml'"):
        apply_changes(BASE, MappingChanges(deleted=("x\n.yaml",)), "v1")
