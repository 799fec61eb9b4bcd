// The demo page: one WebSocketClient, rooms switched without reloading (setChannel).
import {
  WebSocketClient,
  readConfig,
} from "/static/django_aws_api_gateway_websockets/websocket-client.js";

const $ = (selector) => document.querySelector(selector);
const client = new WebSocketClient(readConfig());
window.chat = { client, received: [], closes: [] }; // for the browser tests and the curious

const stateBadge = $("#state");
const refusalBox = $("#refusal");
const messages = $("#messages");
const presence = $("#presence");
const shown = new Set();

function addLine(message) {
  if (message.room && message.room !== client.channel) return;
  if (message.id !== undefined) {
    if (shown.has(message.id)) return; // history and live messages may overlap
    shown.add(message.id);
  }
  const item = document.createElement("li");
  item.className = message.type;
  if (message.type === "chat_message") {
    const who = document.createElement("b");
    who.textContent = message.user;
    item.append(who, ": ", message.text);
    item.dataset.id = message.id;
  } else {
    item.textContent = message.text;
  }
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

client.on("chat_message", (message) => {
  window.chat.received.push(message);
  addLine(message);
});
client.on("notice", addLine);
client.on("presence", (message) => {
  if (message.room !== client.channel) return;
  presence.replaceChildren(
    ...message.users.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }),
  );
});

client.addEventListener("statechange", ({ detail }) => {
  stateBadge.textContent = detail.state;
  stateBadge.dataset.state = detail.state;
  refusalBox.hidden = detail.state !== "refused";
});
client.addEventListener("close", ({ detail }) => window.chat.closes.push(detail.code));
client.addEventListener("refused", ({ detail }) => {
  refusalBox.textContent = `Not allowed in #${client.channel}: ${detail.reason} (${detail.status})`;
  refusalBox.hidden = false;
});
client.addEventListener("open", async ({ detail }) => {
  if (detail.rotation) return; // replaced before the 2-hour limit: nothing was missed
  try {
    for (const line of await client.request("history")) addLine(line);
  } catch (error) {
    console.warn("history:", error);
  }
});

function enterRoom(room) {
  $("#room-name").textContent = room;
  document.title = `#${room}`;
  messages.replaceChildren();
  presence.replaceChildren();
  shown.clear();
  for (const link of document.querySelectorAll("[data-room]")) {
    if (link.dataset.room === room) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  client.setChannel(room);
}

document.querySelectorAll("[data-room]").forEach((link) =>
  link.addEventListener("click", (event) => {
    event.preventDefault();
    history.pushState({ room: link.dataset.room }, "", link.href);
    enterRoom(link.dataset.room);
  }),
);
window.addEventListener("popstate", (event) => enterRoom(event.state?.room || "lobby"));

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#text");
  if (!input.value.trim()) return;
  client.send({ action: "chat", text: input.value }); // queued while reconnecting
  input.value = "";
});
$("#whoami").addEventListener("click", () => client.send({ action: "whoami" }));

client.connect();
