/* weldguard installer page (绑定芯片): camera scanning with the browser's own
   BarcodeDetector where there is one (manual entry otherwise), the phone's
   position into hidden fields, and a preview of the photo. No libraries. */
(function () {
  "use strict";

  var form = document.getElementById("install-form");
  if (!form) {
    return;
  }

  // --- position ------------------------------------------------------------
  var lat = document.getElementById("f-lat");
  var lon = document.getElementById("f-lon");
  var acc = document.getElementById("f-accuracy");
  var geoStatus = document.getElementById("geo-status");

  function locate() {
    if (!("geolocation" in navigator)) {
      geoStatus.textContent = "此浏览器不支持定位，可不填位置直接提交";
      return;
    }
    geoStatus.textContent = "正在获取手机定位…";
    navigator.geolocation.getCurrentPosition(
      function (position) {
        var c = position.coords;
        lat.value = c.latitude.toFixed(7);
        lon.value = c.longitude.toFixed(7);
        acc.value = Math.round(c.accuracy || 0).toString();
        geoStatus.textContent = "已定位：" + c.latitude.toFixed(5) + ", " + c.longitude.toFixed(5) +
          (c.accuracy ? "（精度约 " + Math.round(c.accuracy) + " 米）" : "");
        geoStatus.setAttribute("data-located", "1");
      },
      function (error) {
        geoStatus.textContent = error.code === 1
          ? "未获得定位权限，可不填位置直接提交"
          : "暂时无法定位，可重新定位或不填位置直接提交";
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  }
  document.getElementById("geo-retry").addEventListener("click", locate);
  if (!lat.value) {
    locate();
  }

  // --- photo preview -----------------------------------------------------------
  var photo = document.getElementById("f-photo");
  var preview = document.getElementById("photo-preview");
  photo.addEventListener("change", function () {
    var file = photo.files && photo.files[0];
    if (!file) {
      preview.hidden = true;
      return;
    }
    if (file.size > 8 * 1024 * 1024) {
      photo.setCustomValidity("照片不能超过 8 MB");
    } else {
      photo.setCustomValidity("");
    }
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  });

  // --- camera scanning ------------------------------------------------------------
  var dialog = document.getElementById("scan-dialog");
  var video = document.getElementById("scan-video");
  var scanStatus = document.getElementById("scan-status");
  var stream = null;
  var scanning = false;

  function stop() {
    scanning = false;
    if (stream) {
      stream.getTracks().forEach(function (t) { t.stop(); });
      stream = null;
    }
    if (dialog.open) {
      dialog.close();
    }
  }

  function fill(input, value) {
    input.value = value.trim();
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function scanInto(input) {
    var detector;
    try {
      detector = new window.BarcodeDetector();
    } catch (e) {
      input.focus();
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        scanning = true;
        scanStatus.textContent = "";
        dialog.showModal();
        return video.play();
      })
      .then(function () {
        function tick() {
          if (!scanning) {
            return;
          }
          detector.detect(video).then(function (codes) {
            if (codes.length && codes[0].rawValue) {
              fill(input, codes[0].rawValue);
              stop();
            } else {
              window.setTimeout(tick, 200);
            }
          }).catch(function () { window.setTimeout(tick, 400); });
        }
        tick();
      })
      .catch(function () {
        stop();
        input.focus();
        input.setAttribute("placeholder", "无法打开摄像头，请手工输入");
      });
  }

  document.getElementById("scan-close").addEventListener("click", stop);
  dialog.addEventListener("cancel", stop);

  var canScan = "BarcodeDetector" in window && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  Array.prototype.forEach.call(document.querySelectorAll("[data-scan]"), function (button) {
    if (!canScan) {
      return; // the text fields stay: type or paste instead
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      scanInto(document.getElementById(button.getAttribute("data-scan")));
    });
  });

  // Submitting twice would fit twice: disable the button once sent.
  form.addEventListener("submit", function () {
    var submit = document.getElementById("install-submit");
    window.setTimeout(function () {
      submit.disabled = true;
      submit.textContent = "正在提交…";
    }, 0);
  });
})();
