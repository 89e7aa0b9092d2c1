// The web chat page: posts what the user does, draws new messages from server-sent events.
// Every text comes from the page (its templates): messages as JSON trees drawn as text nodes
// and known tags only (never parsed as markup), labels from #chat-strings and #message-template.
// Plain ES2017 for WeChat's built-in browser and older phones: no modules, no optional
// chaining, no Promise.finally, no replaceChildren or requestSubmit; polling where there is no
// EventSource (or it never connects).
(() => {
  "use strict";

  document.documentElement.className += " js";
  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const strings = JSON.parse(document.getElementById("chat-strings").textContent);
  const list = document.getElementById("messages");
  const template = document.getElementById("message-template");
  const pendingTemplate = document.getElementById("pending-template");
  const dock = document.getElementById("dock");
  const keyboard = document.getElementById("keyboard");
  const notice = document.getElementById("notice");
  const live = document.getElementById("live");
  const liveText = live.querySelector(".live-text") || live;
  const composer = document.getElementById("composer");
  const text = document.getElementById("text");
  const photoInputs = [document.getElementById("photo-input"), document.getElementById("camera-input")];
  const replyTo = document.getElementById("reply-to");
  const replying = document.getElementById("replying");
  const replyingText = document.getElementById("replying-text");
  const phoneForm = document.getElementById("phone-form");
  const viewer = document.getElementById("viewer");
  const TAGS = new Set(["b", "i", "u", "s", "code", "pre", "blockquote"]);
  const LINK = /^(https?:|mailto:|tel:)/i;
  const touch = window.matchMedia ? window.matchMedia("(pointer: coarse)").matches : false;

  let lastId = config.last || 0;
  let kbState = config.keyboard || { menu: [], once: null };
  let queue = Promise.resolve();
  let pending = 0;

  // Staying at the bottom ------------------------------------------------------------------------
  // What the bot asks for last (its buttons, the phone box in the dock) must be in view: the page
  // follows the bottom while the reader is there and whenever a message arrives, also when a
  // photo or the dock changes size later. At the very bottom the sticky dock sits after the last
  // message, in its own place, and covers nothing.

  let pinned = true;

  function distanceToBottom() {
    const root = document.documentElement;
    return root.scrollHeight - (window.pageYOffset + window.innerHeight);
  }

  function toBottom() {
    pinned = true;
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function keepPinned() {
    if (pinned) toBottom();
  }

  window.addEventListener("scroll", () => {
    pinned = distanceToBottom() < 40;
  }, { passive: true });
  window.addEventListener("resize", keepPinned);
  if (window.visualViewport) window.visualViewport.addEventListener("resize", keepPinned);
  list.addEventListener("load", keepPinned, true); // a photo arrived (load does not bubble)
  window.addEventListener("load", keepPinned);
  if (window.ResizeObserver) {
    const observer = new ResizeObserver(keepPinned);
    observer.observe(list);
    observer.observe(dock);
  }

  // Drawing ------------------------------------------------------------------------------------

  function el(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
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
      part.parentNode.removeChild(part);
      return null;
    }
    const slot = part.querySelector(".slot") || part;
    slot.textContent = Array.isArray(value) ? value.join(", ") : String(value);
    return part;
  }

  function thumb(src, alt) {
    const a = el("a", "thumb");
    a.href = src;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.setAttribute("data-testid", "photo-link");
    const img = el("img");
    img.src = src;
    img.alt = alt;
    img.decoding = "async";
    img.setAttribute("data-testid", "message-photo");
    a.appendChild(img);
    return a;
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
    const quote = fill(li, ".msg-quote", view.reply_to ? view.quote || strings.quoted : "");
    if (quote) quote.href = "#m-" + view.reply_to;
    const photos = li.querySelector(".msg-photos");
    if (view.photos.length) {
      for (const src of view.photos) photos.appendChild(thumb(src, photos.dataset.alt));
    } else {
      photos.parentNode.removeChild(photos);
    }
    fill(li, ".msg-pressed", view.pressed);
    fill(li, ".msg-file", view.photos.length ? "" : view.file_name);
    fill(li, ".msg-location", view.location);
    fill(li, ".msg-phone", view.phone);
    const body = li.querySelector(".msg-text");
    if (view.nodes.length) build(body, view.nodes);
    else body.parentNode.removeChild(body);
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
      buttons.parentNode.removeChild(buttons);
    }
    const reply = li.querySelector(".msg-reply");
    if (view.replyable) {
      reply.href = "?reply_to=" + view.id + "#composer";
      reply.dataset.replyTo = view.id;
    } else {
      reply.parentNode.removeChild(reply);
    }
    return li;
  }

  function show(view) {
    if (view.id <= lastId) return; // already drawn (by the page, the stream or a catch-up)
    lastId = view.id;
    if (view.direction === "edit") return window.chatUpdates.apply(view, bubble);
    list.appendChild(bubble(view));
    applyKeyboard(view);
    if (view.force_reply && !touch) text.focus(); // on a phone, focus would cover the prompt
    toBottom();
  }

  // A message drawn again in its place (a later version of it, e.g. a card whose buttons are
  // spent); for the handlers of other events on the stream.
  function redraw(view) {
    const old = document.getElementById("m-" + view.id);
    if (!old) return false;
    old.parentNode.replaceChild(bubble(view), old);
    keepPinned();
    return true;
  }

  // The reply keyboard, as Telegram keeps it (see render.keyboard_state).
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
    clear(keyboard);
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
    keepPinned();
  }

  // Talking to the server -----------------------------------------------------------------------

  function say(message) {
    notice.textContent = message || "";
    notice.hidden = !message;
    keepPinned();
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, (b) => (b < 16 ? "0" : "") + b.toString(16)).join("");
  }

  function setPending(delta) {
    pending += delta;
    document.documentElement.dataset.pending = String(pending);
  }

  // Actions run one after another, in the order the user made them; none is dropped.
  function enqueue(step, button) {
    setPending(1);
    if (button) button.disabled = true;
    const settle = () => {
      if (button) button.disabled = false;
      setPending(-1);
    };
    queue = queue.then(step).catch(() => say(strings.failed)).then(settle, settle);
    return queue;
  }

  function act(url, fields, button) {
    const key = newKey();
    return enqueue(() => post(url, fields, key), button);
  }

  function formData(fields, key) {
    const body = new FormData();
    body.append("csrf", config.csrf);
    body.append("key", key);
    Object.keys(fields).forEach((name) => body.append(name, fields[name]));
    return body;
  }

  async function post(url, fields, key) {
    const body = formData(fields, key);
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
    if (data.placeholder) text.placeholder = data.placeholder;
  }

  // Photos: choosing sends them at once (with the text typed, as a caption), shown as a pending
  // bubble with their previews and a cancel button until the server has them.
  function sendPhotos(files) {
    const li = pendingTemplate.content.firstElementChild.cloneNode(true);
    const box = li.querySelector(".msg-photos");
    const progress = li.querySelector(".progress");
    const previews = files.map((file) => (window.URL && URL.createObjectURL ? URL.createObjectURL(file) : ""));
    previews.forEach((src) => {
      const frame = el("span", "thumb");
      if (src) {
        const img = el("img");
        img.src = src;
        img.alt = "";
        frame.appendChild(img);
      }
      box.appendChild(frame);
    });
    progress.textContent = strings.sending;
    list.appendChild(li);
    toBottom();
    const fields = { text: text.value.trim() };
    if (replyTo.value) fields.reply_to = replyTo.value;
    text.value = "";
    grow();
    setReply(null);
    const key = newKey();
    let request = null;
    let cancelled = false;
    const finish = () => {
      if (li.parentNode) li.parentNode.removeChild(li);
      previews.forEach((src) => src && URL.revokeObjectURL(src));
    };
    li.querySelector(".cancel-upload").addEventListener("click", () => {
      cancelled = true;
      if (request) request.abort();
      finish();
      say(strings.cancelled);
    });
    enqueue(() => {
      if (cancelled) return null;
      return new Promise((resolve) => {
        const body = formData(fields, key);
        files.forEach((file) => body.append("photo", file, file.name));
        request = new XMLHttpRequest();
        request.open("POST", config.urls.send);
        request.setRequestHeader("Accept", "application/json");
        request.setRequestHeader("X-CSRF-Token", config.csrf);
        request.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) {
            progress.textContent = strings.sending + " " + Math.round((100 * event.loaded) / event.total) + "%";
          }
        });
        request.addEventListener("load", () => {
          let answer = {};
          try {
            answer = JSON.parse(request.responseText);
          } catch (error) {
            answer = {};
          }
          say(request.status === 200 ? "" : answer.error || strings.failed);
          resolve(true);
        });
        request.addEventListener("error", () => {
          say(strings.failed);
          resolve(true);
        });
        request.addEventListener("abort", () => resolve(false));
        request.send(body);
      }).then((sent) => (sent ? catchUp() : null)).then(finish, finish);
    }, null);
  }

  // The live stream, or polling where there is none. A browser keeps at most six connections to
  // one server over HTTP/1.1, and each open stream holds one: a hidden or closed tab lets go of
  // its stream, and catches up when shown again.
  let stream = null;
  let retry = null;
  let poller = null;
  let failures = 0;
  const streamHooks = [];

  function listen() {
    if (stream || poller) return;
    if (!window.EventSource || failures >= 3) {
      poll();
      return;
    }
    setLive("connecting");
    stream = new EventSource(config.urls.events + "?after=" + lastId);
    stream.addEventListener("open", () => {
      failures = 0;
      setLive("live");
    });
    stream.addEventListener("message", (event) => show(JSON.parse(event.data)));
    stream.addEventListener("update", (event) => show(JSON.parse(event.data)));
    stream.addEventListener("error", () => {
      setLive("offline");
      if (stream && stream.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the server restarted): start again from what we have;
        // after three such failures in a row (a proxy that holds streams back), poll instead.
        failures += 1;
        stream = null;
        retry = setTimeout(listen, 3000);
      }
    });
    streamHooks.forEach((hook) => hook(stream));
  }

  function poll() {
    setLive("polling");
    catchUp().catch(() => {});
    poller = setInterval(() => catchUp().catch(() => {}), 4000);
  }

  function stop() {
    clearTimeout(retry);
    clearInterval(poller);
    poller = null;
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
    live.title = strings[state] || "";
    liveText.textContent = strings[state] || "";
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
    keepPinned();
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
        }, button);
      },
      () => say(strings.no_location),
      { timeout: 15000, maximumAge: 60000 },
    );
  }

  function enlarge(src) {
    viewer.querySelector("img").src = src;
    viewer.hidden = false;
  }

  document.addEventListener("click", (event) => {
    if (!viewer.hidden && viewer.contains(event.target)) {
      event.preventDefault();
      viewer.hidden = true;
      return;
    }
    const target = event.target.closest ? event.target.closest("button, a") : null;
    if (!target) return;
    if (target.classList.contains("inline-button")) {
      event.preventDefault();
      act(config.urls.press, {
        message_id: target.dataset.messageId, data: target.dataset.callback,
      }, target);
    } else if (target.classList.contains("kb-key")) {
      event.preventDefault();
      act(config.urls.send, { text: target.dataset.text }, target);
    } else if (target.dataset.share === "location") {
      event.preventDefault();
      locate(target);
    } else if (target.dataset.share === "phone") {
      event.preventDefault();
      phoneForm.hidden = false;
      toBottom();
      phoneForm.querySelector("input[name=phone]").focus();
    } else if (target.classList.contains("msg-reply")) {
      event.preventDefault();
      setReply(target.dataset.replyTo);
    } else if (target.id === "cancel-reply") {
      event.preventDefault();
      setReply(null);
    } else if (target.classList.contains("thumb") && target.closest(".msg-photos")) {
      event.preventDefault();
      enlarge(target.href);
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !viewer.hidden) viewer.hidden = true;
  });

  function submitText() {
    const words = text.value.trim();
    if (!words) {
      text.focus();
      return;
    }
    const fields = { text: words };
    if (replyTo.value) fields.reply_to = replyTo.value;
    act(config.urls.send, fields, document.getElementById("send"));
    text.value = "";
    grow();
    setReply(null);
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitText();
  });

  photoInputs.forEach((input) => {
    input.addEventListener("change", () => {
      const files = Array.prototype.slice.call(input.files || []);
      input.value = "";
      if (files.length) sendPhotos(files);
    });
  });

  phoneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = phoneForm.querySelector("input[name=phone]");
    act(config.urls.send, { phone: input.value.trim() }, phoneForm.querySelector("button"));
    input.value = "";
    phoneForm.hidden = true;
  });

  // The text box grows with what is typed, up to a few lines (then it scrolls).
  function grow() {
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight + 2, 128) + "px";
  }
  text.addEventListener("input", grow);

  text.addEventListener("keydown", (event) => {
    // On a computer Enter sends (Shift+Enter: a new line); a phone's Enter is a new line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touch) {
      event.preventDefault();
      submitText();
    }
  });

  // For handlers of other events on the stream (and tests): draw, redraw, and each new stream.
  window.shuoshiChat = {
    bubble,
    show,
    redraw,
    onStream(hook) {
      streamHooks.push(hook);
      if (stream) hook(stream);
    },
  };

  setPending(0);
  drawKeyboard();
  toBottom();
  listen();
})();
