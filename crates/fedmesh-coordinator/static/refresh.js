// Refreshes the page's content every 30 seconds without reloading it: the server answers a
// request with the X-Fragment header with the content of <main> only.
setInterval(function () {
  fetch(location.href, { headers: { 'X-Fragment': '1' } })
    .then(function (r) { return r.ok ? r.text() : null; })
    .then(function (html) { if (html) { document.querySelector('main').innerHTML = html; } });
}, 30000);
