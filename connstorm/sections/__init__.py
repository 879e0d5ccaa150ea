"""The scenario's sections, one module per section, each a frozen pydantic dataclass.

:mod:`connstorm.scenario` assembles them into :class:`~connstorm.scenario.Scenario`
and turns validation errors into one line; these modules only say what each key
is, its type, range and default, and the rules inside one section. Field
docstrings become the JSON Schema's descriptions and the reference in
``docs/scenario.md``, so they are written for users.
"""
