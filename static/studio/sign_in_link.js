// A one-time sign-in link carries its secret after "#": browsers never send that part to the
// server, so it is in no access log and no Referer. Move it into the form, then out of the address bar.
document.addEventListener("DOMContentLoaded", () => {
  const field = document.getElementById("sign-in-secret");
  if (field && !field.value && window.location.hash.length > 1) {
    field.value = decodeURIComponent(window.location.hash.slice(1));
    window.history.replaceState(null, "", window.location.pathname);
  }
});
