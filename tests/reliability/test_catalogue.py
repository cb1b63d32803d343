"""docs/reliability.md lists exactly the bad-input cases the tests run, with the outcome each checks."""

from tests.reliability.catalogue import documented, rows, section


def test_the_reliability_document_lists_every_case_the_tests_run():
    assert len(rows()) >= 40
    assert documented() == section(), "docs/reliability.md is out of date: run python -m tests.reliability.catalogue"
