// The Switchboard page: rooms, peers with path and RTT, chat and files,
// over the browser build of the peer library (/pkg/switchboard.js).
// Channels and the file protocol match the `switchboard chat`, `send` and
// `recv` commands: chat lines on "control"; on "data" a JSON header
// {name, size, sha256}, the bytes in 1 MiB messages, then a request
// "done" that the receiver answers once size and hash match.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CHUNK = 1 << 20;
const text = new TextDecoder();
let lib, node, room;
const peers = new Map(); // id -> { row, connected }
const incoming = new Map(); // peer -> { header, parts, received, hash, item }

function log(line, cls) {
  const div = document.createElement("div");
  div.textContent = line;
  if (cls) div.className = cls;
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
}

const short = (id) => id.slice(0, 8);

function peerRow(id) {
  let p = peers.get(id);
  if (!p) {
    const row = document.createElement("tr");
    row.dataset.peer = id;
    row.innerHTML = '<td class="id"></td><td class="state">new</td><td class="path"></td><td class="rtt"></td>';
    row.querySelector(".id").textContent = short(id);
    $("peers").append(row);
    p = { row, connected: false };
    peers.set(id, p);
  }
  return p;
}

// Updates a peer's row; a peer that left the room has none any more.
function setCell(id, cls, value) {
  const p = peers.get(id);
  if (p) p.row.querySelector("." + cls).textContent = value;
}

// A peer that left the room leaves the table too.
function dropPeer(id) {
  const p = peers.get(id);
  if (!p) return;
  p.row.remove();
  peers.delete(id);
  incoming.delete(id);
}

async function joinRoom(code) {
  const already = await node.join(code);
  room = code.toUpperCase();
  $("room").textContent = `Room ${room}: share this code or the link ${location.origin}/?room=${room}`;
  $("room").dataset.room = room;
  for (const id of already) peerRow(id);
  $("say").disabled = false;
  $("send-file").disabled = false;
}

async function receive(e) {
  if (e.channel === "control") {
    log(`${short(e.peer)}: ${text.decode(e.data)}`);
    return;
  }
  let t = incoming.get(e.peer);
  if (!t) {
    const header = JSON.parse(text.decode(e.data));
    const item = document.createElement("li");
    item.innerHTML = '<span class="name"></span> <progress max="1" value="0"></progress> <span class="status">receiving</span>';
    item.querySelector(".name").textContent = `${header.name} (${header.size} bytes) from ${short(e.peer)}`;
    item.querySelector("progress").max = header.size || 1;
    $("received").append(item);
    incoming.set(e.peer, { header, parts: [], received: 0, hash: new lib.Sha256(), item });
    return;
  }
  t.parts.push(e.data);
  t.hash.update(e.data);
  t.received += e.data.length;
  t.item.querySelector("progress").value = t.received;
}

async function answer(e) {
  const t = incoming.get(e.peer);
  if (e.channel !== "data" || !t) {
    await node.respond(e.peer, e.channel, e.id, new Uint8Array(0));
    return;
  }
  incoming.delete(e.peer);
  const digest = t.hash.hex();
  const ok = digest === t.header.sha256 && t.received === t.header.size;
  t.item.dataset.sha256 = digest;
  t.item.dataset.status = ok ? "verified" : "mismatch";
  const status = t.item.querySelector(".status");
  status.textContent = ok ? `sha256 ${digest} verified` : `sha256 ${digest} does not match ${t.header.sha256}`;
  if (ok) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(t.parts));
    a.download = t.header.name;
    a.textContent = " save";
    t.item.append(a);
    await node.respond(e.peer, e.channel, e.id, new Uint8Array(0));
  } else {
    status.className = "status error";
    await node.respond(e.peer, e.channel, e.id, new Uint8Array(0), `got ${t.received} bytes with sha256 ${digest}`);
  }
}

async function sendFile(file, peer) {
  const item = document.createElement("li");
  item.innerHTML = '<span class="name"></span> <progress max="1" value="0"></progress> <span class="status">hashing</span>';
  item.querySelector(".name").textContent = `${file.name} to ${short(peer)}`;
  item.querySelector("progress").max = file.size || 1;
  $("transfers").append(item);
  const status = item.querySelector(".status");
  try {
    const hash = new lib.Sha256();
    for (let off = 0; off < file.size; off += CHUNK) hash.update(new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer()));
    const header = { name: file.name, size: file.size, sha256: hash.hex() };
    status.textContent = "sending";
    await node.send(peer, "data", JSON.stringify(header));
    for (let off = 0; off < file.size; off += CHUNK) {
      await node.send(peer, "data", new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer()));
      item.querySelector("progress").value = Math.min(off + CHUNK, file.size);
    }
    await node.request(peer, "data", "done", 300000);
    status.textContent = `delivered, sha256 ${header.sha256} verified`;
    item.dataset.status = "verified";
  } catch (err) {
    status.textContent = `failed: ${err.message ?? err}`;
    status.className = "status error";
    item.dataset.status = "failed";
  }
}

async function events() {
  for (;;) {
    const e = await node.nextEvent();
    if (!e) return;
    switch (e.type) {
      case "peer_joined": peerRow(e.peer); break;
      case "link_state": setCell(e.peer, "state", e.state); break;
      case "peer_connected":
        peerRow(e.peer).connected = true;
        setCell(e.peer, "state", "connected");
        setCell(e.peer, "path", e.path);
        log(`* ${short(e.peer)} connected (${e.path})`);
        break;
      case "path_changed": setCell(e.peer, "path", e.path); break;
      case "peer_disconnected":
        if (peers.has(e.peer)) peers.get(e.peer).connected = false;
        setCell(e.peer, "state", "disconnected");
        log(`* ${short(e.peer)} disconnected (${e.reason})`);
        break;
      case "peer_left":
        dropPeer(e.peer);
        log(`* ${short(e.peer)} left room ${e.room}`);
        break;
      case "message": await receive(e); break;
      case "request": await answer(e); break;
      case "signaling_closed": $("status").textContent = `signaling closed: ${e.reason}`; break;
    }
  }
}

function refreshStats() {
  for (const [id, p] of peers) {
    const s = node.stats(id);
    if (s && s.rtt_ms !== null) setCell(id, "rtt", `${s.rtt_ms.toFixed(1)} ms`);
  }
}

async function main() {
  try {
    lib = await import("/pkg/switchboard.js");
    await lib.default();
  } catch (err) {
    $("status").textContent = "The browser library is not built on this server (scripts/web-build, then serve --web-pkg target/web/pkg).";
    $("status").className = "error";
    return;
  }
  const server = params.get("server") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const options = { channels: [{ label: "control" }, { label: "data" }] };
  if (params.get("relay")) options.icePolicy = "relay";
  if (params.get("log")) {
    // The library's log, in the console and on the page.
    options.log = params.get("log");
    const print = console.log;
    console.log = (...args) => {
      print(...args);
      log(args.join(" "), "debug");
    };
  }
  try {
    node = await lib.SwitchboardNode.start(server, options);
  } catch (err) {
    $("status").textContent = `cannot connect to ${server}: ${err.message ?? err}`;
    $("status").className = "error";
    return;
  }
  $("status").textContent = `connected as ${node.id}`;
  $("status").dataset.peer = node.id;
  events();
  setInterval(refreshStats, 500);
  $("create").disabled = false;
  $("join").disabled = false;
  $("create").onclick = async () => joinRoom(await node.createRoom());
  $("join").onclick = () => joinRoom($("room-code").value.trim()).catch((err) => log(`cannot join: ${err.message ?? err}`, "error"));
  $("chat").onsubmit = async (ev) => {
    ev.preventDefault();
    const line = $("msg").value;
    if (!line || !room) return;
    $("msg").value = "";
    log(`me: ${line}`);
    await node.broadcast(room, "control", line);
  };
  $("send-file").onclick = () => {
    const file = $("file").files[0];
    if (!file) return;
    for (const [id, p] of peers) if (p.connected) sendFile(file, id);
  };
  if (params.get("room")) joinRoom(params.get("room")).catch((err) => log(`cannot join: ${err.message ?? err}`, "error"));
}

main();
