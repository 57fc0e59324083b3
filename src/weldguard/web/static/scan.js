/* The scan page: the phone's position for 扫码开机, and one submit per tap. */
(function () {
  "use strict";
  var form = document.getElementById("unlock-form");
  if (!form) {
    return;
  }
  var status = document.getElementById("geo-status");
  var note = document.getElementById("geo-note");
  var button = document.getElementById("unlock-button");
  var settled = false;
  var waiting = null;

  function field(id, value) {
    document.getElementById(id).value = value;
  }

  function located(pos) {
    field("f-lat", pos.coords.latitude.toFixed(6));
    field("f-lon", pos.coords.longitude.toFixed(6));
    field("f-accuracy", Math.round(pos.coords.accuracy));
    status.textContent = "已定位（精度约 " + Math.round(pos.coords.accuracy) + " 米）";
    status.setAttribute("data-located", "1");
    note.hidden = true;
    finish();
  }

  function failed(err) {
    var denied = err && err.code === 1;
    status.textContent = denied ? "定位权限被拒绝" : "暂时无法获取定位";
    status.setAttribute("data-located", "0");
    note.hidden = false;
    finish();
  }

  function finish() {
    settled = true;
    if (waiting) {
      var go = waiting;
      waiting = null;
      go();
    }
  }

  if (navigator.geolocation) {
    navigator.geolocation.getCurrentPosition(located, failed, {
      enableHighAccuracy: true,
      timeout: 10000,
      maximumAge: 30000
    });
  } else {
    failed(null);
  }

  form.addEventListener("submit", function (event) {
    if (button.disabled) {
      event.preventDefault(); // a double tap: the first submit is on its way
      return;
    }
    button.disabled = true;
    button.textContent = "正在核验…";
    if (settled) {
      return;
    }
    // Wait a few seconds for the position, then go with or without it.
    event.preventDefault();
    waiting = function () { form.submit(); };
    setTimeout(finish, 5000);
  });
})();
