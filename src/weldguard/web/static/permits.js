// Hot-work permit pages: the phone's position for the hot spot, the fire watch's
// check-in and the gas sample, and a second thought before a step that stops work.
(function () {
  "use strict";

  function locate(onFix, onStatus) {
    if (!navigator.geolocation) {
      onStatus("此浏览器无法定位");
      return;
    }
    onStatus("正在获取手机定位…");
    navigator.geolocation.getCurrentPosition(
      function (pos) {
        onFix(pos.coords.latitude.toFixed(6), pos.coords.longitude.toFixed(6));
        onStatus("已定位（精度约 " + Math.round(pos.coords.accuracy) + " 米）");
      },
      function () { onStatus("未能定位：请允许浏览器使用位置信息"); },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 }
    );
  }

  document.querySelectorAll("[data-locate]").forEach(function (button) {
    var ids = button.getAttribute("data-locate").split(",");
    var status = button.parentElement.querySelector("[data-locate-status]");
    button.addEventListener("click", function () {
      locate(function (lat, lon) {
        document.getElementById(ids[0]).value = lat;
        document.getElementById(ids[1]).value = lon;
      }, function (text) { if (status) status.textContent = text; });
    });
  });

  document.querySelectorAll(".step-form").forEach(function (form) {
    var lat = form.querySelector('[data-geo="lat"]');
    var lon = form.querySelector('[data-geo="lon"]');
    var status = form.querySelector("[data-geo-status]");
    if (lat && lon) {
      locate(function (a, b) { lat.value = a; lon.value = b; },
             function (text) { if (status) status.textContent = text; });
    }
    form.addEventListener("submit", function (event) {
      var button = form.querySelector("[data-confirm]");
      if (button && !window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
})();
