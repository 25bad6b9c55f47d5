// The rules editor's file field: the chosen .toml or .json file's text goes into the
// text area (and the format follows its name), to be checked and published like typed text.
document.addEventListener("DOMContentLoaded", function () {
  var input = document.getElementById("rules-file");
  var area = document.getElementById("rules-text");
  var fmt = document.getElementById("fmt");
  if (!input || !area) return;
  input.addEventListener("change", function () {
    var file = input.files && input.files[0];
    if (!file) return;
    file.text().then(function (text) {
      area.value = text;
      if (fmt) fmt.value = /\.toml$/i.test(file.name) ? "toml" : /\.json$/i.test(file.name) ? "json" : "auto";
    });
  });
});
