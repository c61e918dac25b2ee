"""The instructor's kit stays whole: every "Think" question of the lab guide has its answer, and nothing stale.

`docs/instructor-answers.md` quotes each question under `## Lesson N: ...`,
as a block quote that starts with **Think.**, word for word as the guide asks
it (whitespace aside), and answers it in a paragraph that starts with
**Answer.**. A lesson added to the guide with a question, or a question
reworded, fails here until its answer is written; so does an answer whose
question the guide no longer asks. The kit's other page, `docs/instructor.md`,
must keep its plan adding up to three hours.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "lab-guide.md"
ANSWERS = ROOT / "docs" / "instructor-answers.md"
KIT = ROOT / "docs" / "instructor.md"
#: An answer shorter than this many words is a placeholder, not an answer.
FEWEST_WORDS = 40


def words(text: str) -> str:
    return " ".join(text.split())


def guide_questions(markdown: str) -> set[tuple[int, str]]:
    """(lesson number, question) for every paragraph of a numbered lesson that starts with **Think.**"""
    found, lesson = set(), None
    for paragraph in re.split(r"\n\s*\n", markdown):
        if heading := re.match(r"## (\d+)\. ", paragraph.lstrip()):
            lesson = int(heading.group(1))
        elif paragraph.lstrip().startswith("## "):
            lesson = None
        if paragraph.startswith("**Think.**"):
            assert lesson is not None, f"a Think question outside a numbered lesson: {paragraph[:80]!r}"
            found.add((lesson, words(paragraph)))
    return found


def kit_answers(markdown: str) -> dict[tuple[int, str], str]:
    """{(lesson number, question quoted): answer} from the answers page."""
    found = {}
    for section in re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]:
        heading = re.match(r"Lesson (\d+): ", section)
        assert heading, f"a section of the answers page is not a lesson's: {section.splitlines()[0]!r}"
        lesson = int(heading.group(1))
        quote, answer = None, None
        for paragraph in re.split(r"\n\s*\n", section):
            lines = paragraph.strip().splitlines()
            if lines and all(line.startswith(">") for line in lines):
                quote = words(" ".join(line.removeprefix(">") for line in lines))
            elif paragraph.startswith("**Answer.**") and quote is not None:
                answer = words(paragraph.removeprefix("**Answer.**"))
                found[(lesson, quote)] = answer
                quote = None
    return found


def test_every_think_question_of_the_guide_has_an_answer_in_the_kit():
    questions = guide_questions(GUIDE.read_text())
    assert len(questions) >= 17, "the guide's questions were not found: has its convention changed?"
    answers = kit_answers(ANSWERS.read_text())
    missing = sorted(questions - answers.keys())
    assert not missing, "questions of docs/lab-guide.md with no answer in docs/instructor-answers.md:\n" + "\n".join(
        f"lesson {lesson}: {question}" for lesson, question in missing
    )
    stale = sorted(answers.keys() - questions)
    assert not stale, "answers to questions the guide no longer asks (reworded? moved?):\n" + "\n".join(
        f"lesson {lesson}: {question}" for lesson, question in stale
    )
    short = [key for key, answer in answers.items() if len(answer.split()) < FEWEST_WORDS]
    assert not short, f"answers of fewer than {FEWEST_WORDS} words: {short}"


def test_the_check_finds_a_question_with_no_answer():
    guide = "## 3. Race\n\n**Think.** Why?\n\n## 4. Lock\n\n**Think.** How long\ndo they take?\n"
    kit = "## Lesson 3: Race\n\n> **Think.** Why?\n\n**Answer.** Because.\n"
    assert guide_questions(guide) == {(3, "**Think.** Why?"), (4, "**Think.** How long do they take?")}
    assert guide_questions(guide) - kit_answers(kit).keys() == {(4, "**Think.** How long do they take?")}


def test_the_plan_adds_up_to_three_hours():
    """Each row of the plan's table starts `| 0:10 | 15 |`: where it starts and its minutes; they must chain."""
    rows = re.findall(r"^\| (\d):(\d\d) \| (\d+) \|", KIT.read_text(), flags=re.MULTILINE)
    assert len(rows) >= 8
    clock = 0
    for hours, minutes, length in rows:
        assert int(hours) * 60 + int(minutes) == clock, f"a slot starts at {hours}:{minutes}, not at minute {clock}"
        clock += int(length)
    assert clock == 180


def test_the_sizing_table_follows_from_the_settings():
    """Each row of the sizing table is the page's formula applied to the settings' reserve and bounds:
    16 threads a team on one worker, 7 a team a worker on four, and a database with room for the fleet."""
    from bankapp.settings import RESERVED_THREADS, Config

    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \| (\d+) \((\d+)\) \| (\d+) \|$", KIT.read_text(), re.MULTILINE)
    assert len(rows) >= 4
    most_threads = Config.model_fields["threads"].metadata  # the bound `threads` may not pass
    bound = next(rule.le for rule in most_threads if hasattr(rule, "le"))
    for teams, memory, one_worker, four_workers, connections, max_connections in (map(int, row) for row in rows):
        assert memory == one_worker == 16 * teams + RESERVED_THREADS <= bound
        assert four_workers == 7 * teams + RESERVED_THREADS and connections == 4 * four_workers
        assert max_connections == max(connections, one_worker) + 10
