/* The room's scoreboard panel: GET /scoreboard about once a second, drawn as a table of teams by exercises.
 *
 * Its own small loop beside dashboard.js's poll (same period), so the panel stays one piece: a plain GET that never
 * waits on a guard. Each cell is the team's best grade for the exercise (pass or fail, the schedules its check
 * tried, its speed against the lab's model solution); its title holds the latest and how many were posted. Grades
 * are self-reported: judged on the trainees' machines, as the note under the title says. The board's ETag makes a
 * poll of an unchanged board a 304 with no body.
 */
"use strict";

(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const element = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };
  let shownKey = "";
  let shownEtag = null;

  function describe(grade) {
    const parts = [`${grade.schedules.toLocaleString("en-US")} schedule${grade.schedules === 1 ? "" : "s"}`];
    if (grade.speed_ratio != null) parts.push(`${grade.speed_ratio.toFixed(2)}× the model's speed`);
    return parts.join(" · ");
  }

  function cell(row) {
    if (!row) return element("td", { className: "none", textContent: "–" });
    const best = row.best, latest = row.latest;
    const td = element(
      "td",
      { className: best.passed ? "passed" : "failed" },
      element("span", { className: "verdict", textContent: best.passed ? "✓ pass" : "✗ fail" }),
      element("small", { textContent: describe(best) }),
    );
    Object.assign(td.dataset, { team: row.team, exercise: row.exercise, passed: String(best.passed), attempts: String(row.attempts) });
    td.title = `${row.team}, ${row.exercise}: ${row.attempts} grade(s) posted\n`
      + `best: ${best.passed ? "pass" : "fail"}, ${describe(best)} (${best.at})\n`
      + `latest: ${latest.passed ? "pass" : "fail"}, ${describe(latest)} (${latest.at})`;
    return td;
  }

  function draw(board) {
    const key = JSON.stringify(board);
    if (key === shownKey) return;
    shownKey = key;
    $("scoreboard-note").textContent = board.note + (board.token_required ? "; each team posts with its own token" : "");
    const table = $("scoreboard-table");
    if (!board.rows.length) {
      table.hidden = true;
      $("scoreboard-caption").hidden = false;
      return;
    }
    const rows = new Map(board.rows.map((row) => [`${row.team}\n${row.exercise}`, row]));
    table.tHead.rows[0].replaceChildren(element("th", { textContent: "team" }), ...board.exercises.map((name) => element("th", { textContent: name })));
    table.tBodies[0].replaceChildren(...board.teams.map((team) => {
      const passed = board.exercises.filter((name) => rows.get(`${team}\n${name}`)?.best.passed).length;
      return element(
        "tr",
        {},
        element("th", { textContent: `${team} (${passed}/${board.exercises.length})` }),
        ...board.exercises.map((name) => cell(rows.get(`${team}\n${name}`))),
      );
    }));
    table.hidden = false;
    $("scoreboard-caption").hidden = true;
  }

  async function poll() {
    const started = performance.now();
    try {
      // "no-cache": the browser sends the board's ETag back, and an unchanged board answers 304 with no body
      const response = await fetch("/scoreboard", { cache: "no-cache", signal: AbortSignal.timeout(5000) });
      const etag = response.headers.get("ETag");
      if (response.ok && (etag === null || etag !== shownEtag)) {
        draw(await response.json());
        shownEtag = etag;
      }
    } catch (error) {
      // the status line (dashboard.js) already says when the server does not answer
    }
    setTimeout(poll, Math.max(100, POLL_MS - (performance.now() - started)));
  }

  poll();
})();
