from tollhouse import native


def test_core_imports_through_the_one_door() -> None:
    assert native.CORE_VERSION == "0.1.0"
