// The Switchboard page: rooms, peers with path and RTT, chat and files,
// over the browser build of the peer library (/pkg/switchboard.js).
// Channels and the file protocol match the `switchboard chat`, `send` and
// `recv` commands: chat lines on "control"; on "data" a JSON header
// {name, size, sha256}, the bytes in 1 MiB messages, then a request
// "done" that the receiver answers once size and hash match.
// Peers are not trusted: a message that breaks these rules is logged as an
// error naming its peer and dropped, and the page goes on.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CHUNK = 1 << 20;
const MAX_FILE = 4 * 1024 ** 3; // the largest file the page receives: 4 GiB
const text = new TextDecoder();
let lib, node, room;
const peers = new Map(); // id -> { row, connected }
// peer -> { header, parts, received, hash, item, failed }; `failed`: the
// transfer ended early, and what else comes is dropped until its "done".
const incoming = new Map();

// A peer is shown by the first 16 hex digits of its id (64 bits: a look-alike
// id takes about 2^64 tries to make, against 2^32 for 8 digits); the full id
// is in the element's title.
const short = (id) => id.slice(0, 16);

function log(line, cls, peer) {
  const div = document.createElement("div");
  div.textContent = line;
  if (cls) div.className = cls;
  if (peer) {
    div.title = peer;
    div.dataset.peer = peer;
  }
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
}

// A list item for a transfer: "<what> <from|to> <peer>", progress, status.
function transferItem(list, what, dir, peer, size) {
  const item = document.createElement("li");
  item.innerHTML =
    '<span class="name"></span> <span class="peer"></span> <progress max="1" value="0"></progress> <span class="status"></span>';
  item.querySelector(".name").textContent = `${what} ${dir}`;
  item.querySelector(".peer").textContent = short(peer);
  item.querySelector(".peer").title = peer;
  item.querySelector("progress").max = size || 1;
  list.append(item);
  return item;
}

// Shows how a transfer goes; `done` ("verified", "mismatch" or "failed")
// marks it finished, in its `data-status` too.
function setStatus(item, line, done) {
  const s = item.querySelector(".status");
  s.textContent = line;
  if (!done) return;
  item.dataset.status = done;
  if (done !== "verified") s.className = "status error";
}

function peerRow(id) {
  let p = peers.get(id);
  if (!p) {
    const row = document.createElement("tr");
    row.dataset.peer = id;
    row.innerHTML = '<td class="id"></td><td class="state">new</td><td class="path"></td><td class="rtt"></td>';
    row.querySelector(".id").textContent = short(id);
    row.querySelector(".id").title = id;
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

// A message's data as a string: text messages come as strings, binary
// ones as bytes.
const asText = (data) => (typeof data === "string" ? data : text.decode(data));

// The file header in `data`; throws saying why when it is not one.
function fileHeader(data) {
  let h;
  try {
    h = JSON.parse(asText(data));
  } catch {
    throw new Error("not a file header: not JSON");
  }
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new Error("not a file header: not a JSON object");
  if (typeof h.name !== "string" || h.name.length > 255) throw new Error("file name: not a string of at most 255 characters");
  if (!Number.isSafeInteger(h.size) || h.size < 0 || h.size > MAX_FILE) throw new Error("file size: not a whole number of bytes up to 4 GiB");
  if (typeof h.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(h.sha256)) throw new Error("sha256: not 64 lowercase hex digits");
  return { name: h.name, size: h.size, sha256: h.sha256 };
}

function receive(e) {
  if (e.channel === "control") {
    log(`${short(e.peer)}: ${asText(e.data)}`, null, e.peer);
    return;
  }
  if (e.channel !== "data") throw new Error(`unknown channel ${e.channel}`);
  const t = incoming.get(e.peer);
  if (!t) {
    const header = fileHeader(e.data);
    const item = transferItem($("received"), `${header.name} (${header.size} bytes)`, "from", e.peer, header.size);
    setStatus(item, "receiving");
    incoming.set(e.peer, { header, parts: [], received: 0, hash: new lib.Sha256(), item, failed: false });
    return;
  }
  if (t.failed) return;
  if (typeof e.data === "string") throw new Error("file part: a text message, not bytes");
  if (t.received + e.data.length > t.header.size) {
    // More than announced: end the transfer now rather than keep the bytes.
    t.failed = true;
    t.parts = [];
    const why = `more than the ${t.header.size} bytes announced`;
    setStatus(t.item, `failed after ${t.received} bytes: ${why}`, "failed");
    throw new Error(`file ${t.header.name}: ${why}; transfer ended`);
  }
  t.parts.push(e.data);
  t.hash.update(e.data);
  t.received += e.data.length;
  t.item.querySelector("progress").value = t.received;
}

// Requests: on "control" a chat peer checking its lines arrived; on "data"
// the sender's "done", answered with the verdict on the file.
async function answer(e) {
  const none = new Uint8Array(0);
  if (e.channel !== "data") {
    await node.respond(e.peer, e.channel, e.id, none);
    return;
  }
  const t = incoming.get(e.peer);
  incoming.delete(e.peer);
  if (!t) {
    await node.respond(e.peer, e.channel, e.id, none, "no file announced");
    return;
  }
  if (t.failed) {
    await node.respond(e.peer, e.channel, e.id, none, `more than the ${t.header.size} bytes announced; transfer ended`);
    return;
  }
  const digest = t.hash.hex();
  t.item.dataset.sha256 = digest;
  if (digest === t.header.sha256 && t.received === t.header.size) {
    setStatus(t.item, `sha256 ${digest} verified`, "verified");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(t.parts));
    a.download = t.header.name;
    a.textContent = " save";
    t.item.append(a);
    await node.respond(e.peer, e.channel, e.id, none);
  } else {
    setStatus(t.item, `got ${t.received} bytes with sha256 ${digest}, not ${t.header.size} with ${t.header.sha256}`, "mismatch");
    await node.respond(e.peer, e.channel, e.id, none, `got ${t.received} bytes with sha256 ${digest}`);
  }
}

async function sendFile(file, peer) {
  const item = transferItem($("transfers"), file.name, "to", peer, file.size);
  setStatus(item, "hashing");
  try {
    const hash = new lib.Sha256();
    for (let off = 0; off < file.size; off += CHUNK) hash.update(new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer()));
    const header = { name: file.name, size: file.size, sha256: hash.hex() };
    setStatus(item, "sending");
    await node.send(peer, "data", JSON.stringify(header));
    for (let off = 0; off < file.size; off += CHUNK) {
      await node.send(peer, "data", new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer()));
      item.querySelector("progress").value = Math.min(off + CHUNK, file.size);
    }
    await node.request(peer, "data", "done", 300000);
    setStatus(item, `delivered, sha256 ${header.sha256} verified`, "verified");
  } catch (err) {
    setStatus(item, `failed: ${err.message ?? err}`, "failed");
  }
}

async function handle(e) {
  switch (e.type) {
    case "peer_joined": peerRow(e.peer); break;
    case "link_state": setCell(e.peer, "state", e.state); break;
    case "peer_connected":
      peerRow(e.peer).connected = true;
      setCell(e.peer, "state", "connected");
      setCell(e.peer, "path", e.path);
      log(`* ${short(e.peer)} connected (${e.path})`, null, e.peer);
      break;
    case "path_changed": setCell(e.peer, "path", e.path); break;
    case "peer_disconnected":
      if (peers.has(e.peer)) peers.get(e.peer).connected = false;
      setCell(e.peer, "state", "disconnected");
      log(`* ${short(e.peer)} disconnected (${e.reason})`, null, e.peer);
      break;
    case "peer_left":
      dropPeer(e.peer);
      log(`* ${short(e.peer)} left room ${e.room}`, null, e.peer);
      break;
    case "message": receive(e); break;
    case "request": await answer(e); break;
    case "signaling_closed": $("status").textContent = `signaling closed: ${e.reason}`; break;
  }
}

// One event at a time; what one event breaks is logged and the loop goes on.
async function events() {
  for (;;) {
    const e = await node.nextEvent();
    if (!e) return;
    try {
      await handle(e);
    } catch (err) {
      const who = e.peer ? short(e.peer) : "page";
      log(`${who}: ${e.type} dropped: ${err.message ?? err}`, "error", e.peer);
    }
  }
}

function refreshStats() {
  for (const [id, p] of peers) {
    const s = node.stats(id);
    if (s && s.rtt_ms !== null) setCell(id, "rtt", `${s.rtt_ms.toFixed(1)} ms`);
  }
}

// The signaling server: this page's own, or one named by `?server=` on this
// page's host (another path, or ws/wss); `null` for any other, so that a
// link cannot send the page to a stranger's server.
function signalingServer() {
  const own = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const asked = params.get("server");
  if (asked === null) return own;
  let url;
  try {
    url = new URL(asked);
  } catch {
    return null;
  }
  return (url.protocol === "ws:" || url.protocol === "wss:") && url.host === location.host ? url.href : null;
}

function fail(line) {
  $("status").textContent = line;
  $("status").className = "error";
}

async function main() {
  const server = signalingServer();
  if (!server) {
    fail(`refusing the server ${params.get("server")} of this link: the page only connects to its own host, ${location.host}`);
    return;
  }
  try {
    lib = await import("/pkg/switchboard.js");
    await lib.default();
  } catch (err) {
    fail("The browser library is not built on this server (scripts/web-build, then serve --web-pkg target/web/pkg).");
    return;
  }
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
    fail(`cannot connect to ${server}: ${err.message ?? err}`);
    return;
  }
  $("status").textContent = `connected as ${node.id}`;
  $("status").dataset.peer = node.id;
  events();
  setInterval(refreshStats, 500);
  $("create").disabled = false;
  $("join").disabled = false;
  const cannotJoin = (err) => log(`cannot join: ${err.message ?? err}`, "error");
  $("create").onclick = () => node.createRoom().then(joinRoom).catch(cannotJoin);
  $("join").onclick = () => joinRoom($("room-code").value.trim()).catch(cannotJoin);
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
  // A link names a room but does not join it: the user presses Join.
  const invited = params.get("room");
  if (invited) {
    $("room-code").value = invited;
    $("room").textContent = `This link is for room ${invited}: press Join to enter it.`;
  }
}

main();
