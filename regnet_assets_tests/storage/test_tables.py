"""The table registry (``storage/tables.py``) is well formed and the README's table list is made
from it. (That every file's schema equals it is tested in assets/test_table_schemas.py.)"""

from pathlib import Path

import pyarrow as pa

from regnet_assets.storage import validate_table_name
from regnet_assets.storage.tables import GROUPS, TABLES, arrow_schema, markdown_table_list

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_table_has_a_group_a_description_and_typed_documented_columns():
    for name, t in TABLES.items():
        assert validate_table_name(name) == t.name and t.group in GROUPS, name
        assert t.description.strip() and t.columns, name
        names = [c.name for c in t.columns]
        assert len(set(names)) == len(names), f"{name}: a column listed twice"
        assert all(c.meaning.strip() for c in t.columns), f"{name}: a column without a meaning"
        assert isinstance(arrow_schema(name), pa.Schema), name  # every type is an Arrow type name
        assert "gene" in names or not t.per_gene, f"{name}: a per-gene table carries the gene column"


def test_the_readme_table_list_is_the_registrys():
    section = README.read_text().split("## Result tables", 1)[1].split("\n## ", 1)[0]
    assert markdown_table_list() in section, (
        "README.md's table list differs from storage/tables.py: paste the output of "
        "`python -m regnet_assets.storage.tables` into its Result tables section"
    )
