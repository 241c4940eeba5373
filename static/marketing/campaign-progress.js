// While a campaign sends, reload its page every 10 seconds to show progress, unless the
// user is typing in a form. A file of its own: the Content-Security-Policy allows no inline script.
setTimeout(function () {
  if (!document.querySelector("form :focus")) {
    location.reload();
  }
}, 10000);
