// The web chat page: posts what the user does, draws new messages from server-sent events.
// Every text comes from the page (its templates): messages as JSON trees drawn as text nodes
// and known tags only (never parsed as markup), labels from #chat-strings and #message-template.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const strings = JSON.parse(document.getElementById("chat-strings").textContent);
  const list = document.getElementById("messages");
  const template = document.getElementById("message-template");
  const keyboard = document.getElementById("keyboard");
  const notice = document.getElementById("notice");
  const live = document.getElementById("live");
  const composer = document.getElementById("composer");
  const text = document.getElementById("text");
  const photoInput = document.getElementById("photo-input");
  const replyTo = document.getElementById("reply-to");
  const replying = document.getElementById("replying");
  const replyingText = document.getElementById("replying-text");
  const phoneForm = document.getElementById("phone-form");
  const TAGS = new Set(["b", "i", "u", "s", "code", "pre", "blockquote"]);
  const LINK = /^(https?:|mailto:|tel:)/i;

  let lastId = config.last || 0;
  let kbState = config.keyboard || { menu: [], once: null };
  let queue = Promise.resolve();
  let pending = 0;

  // Drawing ------------------------------------------------------------------------------------

  function el(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function build(parent, nodes) {
    for (const n of nodes || []) {
      if (typeof n === "string") {
        parent.appendChild(document.createTextNode(n));
      } else if (Array.isArray(n) && n[0] === "a" && n[1] && LINK.test(n[1].href || "")) {
        const a = el("a");
        a.href = n[1].href;
        a.rel = "noopener noreferrer";
        a.target = "_blank";
        build(a, n[2]);
        parent.appendChild(a);
      } else if (Array.isArray(n) && TAGS.has(n[0])) {
        const tag = el(n[0]);
        build(tag, n[2]);
        parent.appendChild(tag);
      } else if (Array.isArray(n)) {
        build(parent, n[2]); // an unknown tag: keep its words, drop the tag
      }
    }
  }

  function fill(root, selector, value) {
    const part = root.querySelector(selector);
    if (value === null || value === undefined || value === "" || value.length === 0) {
      part.remove();
      return null;
    }
    const slot = part.querySelector(".slot") || part;
    slot.textContent = Array.isArray(value) ? value.join(", ") : String(value);
    return part;
  }

  function bubble(view) {
    const li = template.content.firstElementChild.cloneNode(true);
    li.id = "m-" + view.id;
    li.classList.add("msg-" + view.direction);
    li.dataset.messageId = view.id;
    li.dataset.direction = view.direction;
    li.dataset.kind = view.kind;
    if (view.case_number) li.dataset.case = view.case_number;
    li.querySelector("time").textContent = view.at;
    fill(li, ".msg-case", view.case_number);
    const quote = fill(li, ".msg-quote", view.reply_to);
    if (quote) quote.href = "#m-" + view.reply_to;
    const photos = li.querySelector(".msg-photos");
    if (view.photos.length) {
      for (const src of view.photos) {
        const a = el("a");
        a.href = src;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        const img = el("img");
        img.src = src;
        img.alt = photos.dataset.alt;
        img.loading = "lazy";
        img.setAttribute("data-testid", "message-photo");
        a.appendChild(img);
        photos.appendChild(a);
      }
    } else {
      photos.remove();
    }
    fill(li, ".msg-pressed", view.pressed);
    fill(li, ".msg-file", view.file_name);
    fill(li, ".msg-location", view.location);
    fill(li, ".msg-phone", view.phone);
    const body = li.querySelector(".msg-text");
    if (view.nodes.length) build(body, view.nodes);
    else body.remove();
    const buttons = li.querySelector(".msg-buttons");
    if (view.buttons.length) {
      for (const row of view.buttons) {
        const line = el("div", "msg-button-row");
        for (const b of row) {
          const button = el("button", "inline-button");
          button.type = "button";
          button.textContent = b.text;
          button.dataset.callback = b.data;
          button.dataset.messageId = view.id;
          button.setAttribute("data-testid", "inline-button");
          line.appendChild(button);
        }
        buttons.appendChild(line);
      }
    } else {
      buttons.remove();
    }
    const reply = li.querySelector(".msg-reply");
    if (view.direction === "out") {
      reply.href = "?reply_to=" + view.id + "#composer";
      reply.dataset.replyTo = view.id;
    } else {
      reply.remove();
    }
    return li;
  }

  function show(view) {
    if (view.id <= lastId) return; // already drawn (by the page, the stream or a catch-up)
    lastId = view.id;
    if (view.direction === "edit") return window.chatUpdates.apply(view, bubble);
    list.appendChild(bubble(view));
    applyKeyboard(view);
    if (view.force_reply) text.focus();
    toBottom();
  }

  // The very bottom, where the sticky text box sits in its place and covers no message.
  function toBottom() {
    window.scrollTo({ top: document.documentElement.scrollHeight });
  }

  // The reply keyboard, as Telegram keeps it (see webchat_render.keyboard_state).
  function applyKeyboard(view) {
    if (view.direction === "in") {
      kbState.once = null;
    } else if (view.request_location || view.request_contact) {
      kbState.once = {
        keys: view.keyboard,
        request_location: view.request_location,
        request_contact: view.request_contact,
      };
    } else if (view.keyboard.length) {
      kbState = { menu: view.keyboard, once: null };
    } else if (view.remove_keyboard) {
      kbState.menu = [];
    }
    drawKeyboard();
  }

  function drawKeyboard() {
    const once = kbState.once;
    const rows = once ? once.keys : kbState.menu;
    keyboard.replaceChildren();
    rows.forEach((row, r) => {
      const line = el("div", "kb-row");
      row.forEach((key, i) => {
        const button = el("button");
        button.type = "button";
        button.textContent = key;
        if (once && r === 0 && i === 0 && (once.request_location || once.request_contact)) {
          const what = once.request_location ? "location" : "phone";
          button.className = "kb-share";
          button.dataset.share = what;
          button.setAttribute("data-testid", "share-" + what);
        } else {
          button.className = "kb-key";
          button.dataset.text = key;
          button.setAttribute("data-testid", "keyboard-button");
        }
        line.appendChild(button);
      });
      keyboard.appendChild(line);
    });
    if (!once || !once.request_contact) phoneForm.hidden = true;
  }

  // Talking to the server -----------------------------------------------------------------------

  function say(message) {
    notice.textContent = message || "";
    notice.hidden = !message;
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setPending(delta) {
    pending += delta;
    document.documentElement.dataset.pending = String(pending);
  }

  // Actions run one after another, in the order the user made them; none is dropped.
  function act(url, fields, files, button) {
    const key = newKey();
    setPending(1);
    if (button) button.disabled = true;
    queue = queue
      .then(() => post(url, fields, files, key))
      .catch(() => say(strings.failed))
      .finally(() => {
        if (button) button.disabled = false;
        setPending(-1);
      });
    return queue;
  }

  async function post(url, fields, files, key) {
    const body = new FormData();
    body.append("csrf", config.csrf);
    body.append("key", key);
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    for (const file of files || []) body.append("photo", file, file.name);
    say(files && files.length ? strings.sending : "");
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(url, {
          method: "POST",
          body,
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": config.csrf },
        });
        break;
      } catch (error) {
        if (attempt >= 2) throw error; // the same key again: the server takes it once
      }
    }
    const answer = await response.json().catch(() => ({}));
    say(response.ok ? "" : answer.error || strings.failed);
    await catchUp();
  }

  async function catchUp() {
    const response = await fetch(config.urls.history + "?after=" + lastId, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    const data = await response.json();
    for (const view of data.messages) show(view);
  }

  // A browser keeps at most six connections to one server over HTTP/1.1, and each open stream
  // holds one: a hidden or closed tab lets go of its stream, and catches up when shown again.
  let stream = null;
  let retry = null;
  function listen() {
    if (stream) return;
    setLive("connecting");
    stream = new EventSource(config.urls.events + "?after=" + lastId);
    stream.addEventListener("open", () => setLive("live"));
    stream.addEventListener("message", (event) => show(JSON.parse(event.data)));
    stream.addEventListener("update", (event) => show(JSON.parse(event.data)));
    stream.addEventListener("error", () => {
      setLive("offline");
      if (stream && stream.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the server restarted): start again from what we have.
        stream = null;
        retry = setTimeout(listen, 3000);
      }
    });
  }

  function stop() {
    clearTimeout(retry);
    if (stream) stream.close();
    stream = null;
    setLive("offline");
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      stop();
    } else {
      listen();
      catchUp().catch(() => {});
    }
  });
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) listen(); // back from the browser's page cache
  });

  function setLive(state) {
    live.dataset.state = state;
    live.textContent = strings[state === "live" ? "live" : state];
  }

  // What the user does ---------------------------------------------------------------------------

  function setReply(id) {
    replyTo.value = id || "";
    replying.hidden = !id;
    if (id) {
      const target = document.querySelector("#m-" + id + " .msg-text");
      replyingText.textContent = target ? target.textContent.slice(0, 80) : "#" + id;
      text.focus();
    }
  }

  function locate(button) {
    if (!navigator.geolocation) {
      say(strings.no_location);
      return;
    }
    say(strings.locating);
    navigator.geolocation.getCurrentPosition(
      (position) => {
        say("");
        act(config.urls.send, {
          latitude: String(position.coords.latitude),
          longitude: String(position.coords.longitude),
        }, [], button);
      },
      () => say(strings.no_location),
      { timeout: 15000, maximumAge: 60000 },
    );
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button, a");
    if (!target) return;
    if (target.classList.contains("inline-button")) {
      event.preventDefault();
      act(config.urls.press, {
        message_id: target.dataset.messageId, data: target.dataset.callback,
      }, [], target);
    } else if (target.classList.contains("kb-key")) {
      event.preventDefault();
      act(config.urls.send, { text: target.dataset.text }, [], target);
    } else if (target.dataset.share === "location") {
      event.preventDefault();
      locate(target);
    } else if (target.dataset.share === "phone") {
      event.preventDefault();
      phoneForm.hidden = false;
      phoneForm.querySelector("input[name=phone]").focus();
    } else if (target.classList.contains("msg-reply")) {
      event.preventDefault();
      setReply(target.dataset.replyTo);
    } else if (target.id === "cancel-reply") {
      event.preventDefault();
      setReply(null);
    }
  });

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const words = text.value.trim();
    const files = Array.from(photoInput.files || []);
    if (!words && !files.length) {
      text.focus();
      return;
    }
    const fields = { text: words };
    if (replyTo.value) fields.reply_to = replyTo.value;
    act(config.urls.send, fields, files, document.getElementById("send"));
    text.value = "";
    photoInput.value = "";
    setReply(null);
  });

  photoInput.addEventListener("change", () => {
    const names = Array.from(photoInput.files || [], (f) => f.name);
    say(names.length ? strings.photos_chosen + names.join(", ") : "");
  });

  phoneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = phoneForm.querySelector("input[name=phone]");
    act(config.urls.send, { phone: input.value.trim() }, [], phoneForm.querySelector("button"));
    input.value = "";
    phoneForm.hidden = true;
  });

  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  setPending(0);
  drawKeyboard();
  toBottom();
  listen();
})();
