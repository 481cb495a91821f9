"""The inventory: YAML with the line of every key -> a frozen, validated, technology-neutral model.

source    YAML loaded with the line of every node
reader    collects every problem with its file:line
values    the grammar of every value that can reach a config file
parser    one reader per top-level section -> the model
model     the frozen dataclasses
resolved  the model as plain data, defaults filled and secrets masked
"""

from haops.inventory.parser import load, parse

__all__ = ["load", "parse"]
