// Cards that stay true: when a case moves on, the server edits the messages that show it, and
// the page gets an edit ({direction: "edit", id: its place in the stream, message: the message
// as it is now}) as an SSE "update" event or in a catch-up. This redraws that message in place
// with the page's own drawing function; kept apart from chat.js so the page's look can change
// around it. A message no longer on the page (older than the page's history) needs nothing.
window.chatUpdates = {
  apply(edit, draw) {
    const old = document.getElementById("m-" + edit.message.id);
    if (old) old.replaceWith(draw(edit.message));
  },
};
