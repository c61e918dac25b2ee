// The room on the dashboard (docs/rooms.md). Loaded before dashboard.js, with no build step.
//
// `/?team=NAME` (or `/teams/NAME/`): the team's own dashboard. Every request the page makes to this server carries
// `X-Team: NAME`, so what it polls and what its buttons change are that team's alone.
// Otherwise, in a room (or with `?console`): the instructor's console, every team in one table, and the
// room's buttons: move every team to lesson N, reset all, freeze all, thaw all, make teams.
"use strict";

const ROOM_TEAM = new URLSearchParams(location.search).get("team") || (location.pathname.match(/^\/teams\/([a-z0-9-]{1,32})\//) || [])[1];
const ROOM_TOKEN_KEY = "bankapp-admin-token"; // the dashboard's own key: one token per tab
const ROOM_POLL_MS = 2000;

if (ROOM_TEAM) {
  const sendAsIs = window.fetch.bind(window);
  window.fetch = (input, init = {}) => {
    if (typeof input === "string" && input.startsWith("/")) {
      const headers = new Headers(init.headers || {});
      headers.set("X-Team", ROOM_TEAM);
      init = { ...init, headers };
    }
    return sendAsIs(input, init);
  };
}

function roomEl(id) {
  return document.getElementById(id);
}

function roomSay(text) {
  roomEl("room-status").textContent = text;
}

async function roomCall(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(ROOM_TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) roomEl("room-token").hidden = false;
  if (!response.ok) throw new Error(answer.detail || `${method} ${path} answered ${response.status}`);
  return answer;
}

function roomCell(row, text, className) {
  const cell = row.insertCell();
  if (text instanceof Node) cell.append(text);
  else cell.textContent = text;
  if (className) cell.className = className;
}

function drawRoom(room) {
  const body = roomEl("room-table").tBodies[0];
  body.replaceChildren();
  for (const team of room.teams) {
    const row = body.insertRow();
    row.dataset.team = team.name;
    const link = document.createElement("a");
    link.href = `/?team=${encodeURIComponent(team.name)}`;
    link.target = "_blank";
    link.textContent = team.name;
    roomCell(row, link);
    roomCell(row, team.frozen ? "frozen" : "open", team.frozen ? "bad" : "");
    roomCell(row, team.guards.deposit_guard, "guard");
    roomCell(row, team.guards.transfer_policy);
    roomCell(row, team.guards.checkout_guard);
    roomCell(row, team.deposits_per_s.toLocaleString());
    roomCell(row, team.lost_cents.toLocaleString(), team.lost_cents ? "bad" : "");
    roomCell(row, (team.deadlocks + team.self_deadlocks).toLocaleString(), team.deadlocks + team.self_deadlocks ? "bad" : "");
    roomCell(row, team.share.refused.toLocaleString());
    const grades = Object.entries(team.grades || {});
    const passed = grades.filter(([, ok]) => ok).length;
    roomCell(row, grades.length ? `${passed}/${grades.length} passed` : "–");
    if (grades.length) row.cells[row.cells.length - 1].title = grades.map(([name, ok]) => `${name}: ${ok ? "passed" : "failed"}`).join("\n");
  }
  roomEl("room-table").hidden = false;
}

async function pollRoom() {
  try {
    drawRoom(await roomCall("GET", "/admin/rooms"));
    roomEl("room-token").hidden = true;
  } catch (error) {
    roomSay(error.message);
  }
  setTimeout(pollRoom, ROOM_POLL_MS);
}

async function roomAction(method, path, body, said) {
  try {
    const answer = await roomCall(method, path, body);
    roomSay(said(answer));
    drawRoom(await roomCall("GET", "/admin/rooms"));
  } catch (error) {
    roomSay(error.message);
  }
}

/** One card per team, to print and hand out: its name, its dashboard's address and its token (shown once). */
function drawCards(teams) {
  const cards = roomEl("room-cards");
  cards.replaceChildren();
  for (const team of teams) {
    const card = document.createElement("div");
    card.className = "card";
    const name = document.createElement("b");
    name.textContent = `team ${team.name}`;
    const address = document.createElement("div");
    address.textContent = `${location.origin}/?team=${encodeURIComponent(team.name)}`;
    const token = document.createElement("code");
    token.textContent = team.token;
    card.append(name, address, "token: ", token);
    cards.append(card);
  }
  cards.hidden = false;
  roomEl("room-print").hidden = false;
}

function startRoom() {
  const section = roomEl("room");
  if (ROOM_TEAM) {
    roomEl("room-team").textContent = `team ${ROOM_TEAM}`;
    roomEl("room-team").hidden = false;
    return;
  }
  if (!section || (section.dataset.open !== "true" && !new URLSearchParams(location.search).has("console"))) return;
  section.hidden = false;
  roomEl("room-lesson-move").addEventListener("click", () => {
    const lesson = Number(roomEl("room-lesson").value);
    roomAction("POST", "/admin/rooms/lesson", { lesson }, (a) => `every team (${a.teams}) moved to lesson ${a.lesson}: ${a.title}`);
  });
  roomEl("room-reset").addEventListener("click", () => roomAction("POST", "/admin/rooms/reset", undefined, (a) => `${a.teams} teams reset`));
  roomEl("room-freeze").addEventListener("click", () => roomAction("POST", "/admin/rooms/freeze", { frozen: true }, (a) => `${a.teams} teams frozen`));
  roomEl("room-thaw").addEventListener("click", () => roomAction("POST", "/admin/rooms/freeze", { frozen: false }, (a) => `${a.teams} teams thawed`));
  roomEl("room-make").addEventListener("submit", (event) => {
    event.preventDefault();
    const teams = roomEl("room-names").value.split(/[\s,]+/).filter(Boolean);
    roomAction("POST", "/admin/rooms", { teams }, (a) => {
      drawCards(a.teams);
      return `${a.teams.length} teams made; their tokens are on the cards below, shown this once: print them`;
    });
  });
  roomEl("room-print").addEventListener("click", () => window.print());
  roomEl("room-token").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(ROOM_TOKEN_KEY, roomEl("room-token-input").value);
    roomEl("room-token").hidden = true;
  });
  pollRoom();
}

document.addEventListener("DOMContentLoaded", startRoom);
