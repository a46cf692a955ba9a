"""Reading Dash layouts in tests: the text a person would see, and a component by its id."""

from __future__ import annotations

from typing import Any


def text_of(component: Any) -> str:
    """Every string in a component tree, joined by spaces (what the page shows, roughly)."""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(text_of(child) for child in component)
    return text_of(getattr(component, "children", None) or "")


def find(component: Any, component_id: Any) -> Any | None:
    """The first component in the tree whose id is `component_id`, or None."""
    if isinstance(component, list | tuple):
        return next((found for c in component if (found := find(c, component_id)) is not None), None)
    if not hasattr(component, "to_plotly_json"):
        return None
    if getattr(component, "id", None) == component_id:
        return component
    return find(getattr(component, "children", None), component_id)
