"""`GET /models`: the demo, every random spec, and a hub id standing for any other."""

from vitscope.contracts.specs import FAMILIES, SIZES, parse_model_spec


def test_models_lists_demo_first_then_every_random_spec(client):
    entries = client.get("/api/v1/models").json()
    specs = [e["spec"] for e in entries]
    assert specs[0] == "demo"
    assert {f"random:{f}-{s}" for f in FAMILIES for s in SIZES} <= set(specs)
    assert all(e["description"] for e in entries)


def test_every_listed_spec_parses_and_the_last_says_any_hub_id_works(client):
    entries = client.get("/api/v1/models").json()
    assert all(parse_model_spec(e["spec"]).name == e["spec"] for e in entries)
    assert "any Hugging Face" in entries[-1]["description"] and "folder" in entries[-1]["description"]
