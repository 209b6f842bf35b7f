// Search reads its index through a web worker, which browsers do not start for pages opened from the
// file system (file://). There, say so in the search box instead of failing silently.
document.addEventListener("DOMContentLoaded", function () {
  if (window.location.protocol !== "file:") {
    return;
  }
  var input = document.querySelector(".md-search__input");
  if (input) {
    input.placeholder = "Search needs a server: mkdocs serve";
    input.title = "Search does not work on pages opened from files; run `mkdocs serve` " +
      "(or `python -m http.server -d site`) and open the address it prints.";
    input.disabled = true;
  }
});
