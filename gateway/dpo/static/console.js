// The DPO console's only script: progressive enhancement, the pages work without it.
// While a verification runs, the integrity page reloads itself until it has finished.
"use strict";
(function () {
  if (document.querySelector("[data-refresh-while-running]")) {
    window.setTimeout(function () { window.location.reload(); }, 1500);
  }
})();
