from terraform.provider import docs
from terraform.provider.provider import DATA_SOURCES, RESOURCES
from terraform.provider.schema import walk


def test_committed_page_is_the_generated_one():
    # If this fails: python -m terraform.provider.docs (make terraform-docs).
    assert docs.PAGE.read_text() == docs.render()


def test_every_attribute_is_described_on_the_page():
    page = docs.render()
    for kind in (*RESOURCES, *DATA_SOURCES):
        for path, _, field in walk(kind.fields):
            assert field.description.strip(), f"{kind.name}.{path} has no description"
            assert f"| `{path}` |" in page
