"""The county organisation file: one YAML file an operator edits, validated then loaded.

The file is the single source of truth; loading it again after an edit updates the database in
place. Everything is validated before the first write (parser.py, pure, with line numbers), so
a bad file leaves the database untouched; sync.py writes what the file says.
"""

from storage.org_file.parser import parse_org_text, read_org_file
from storage.org_file.spec import (
    AreaSpec,
    CategorySpec,
    DepartmentSpec,
    OrgFileError,
    OrgSpec,
    PersonSpec,
    RoleSpec,
)
from storage.org_file.sync import KindCounts, OrgLoadReport, apply_org, load_org, load_org_file

__all__ = [
    "AreaSpec",
    "CategorySpec",
    "DepartmentSpec",
    "KindCounts",
    "OrgFileError",
    "OrgLoadReport",
    "OrgSpec",
    "PersonSpec",
    "RoleSpec",
    "apply_org",
    "load_org",
    "load_org_file",
    "parse_org_text",
    "read_org_file",
]
