/* weldguard machine page: the Leaflet map of the chip's last fix, the site
   (pin and fence outline) and where the current chip was fitted. Data comes
   from data-map (JSON); no outside requests beyond the configured tiles. */
(function () {
  "use strict";

  function pin(L, map, point, className, title, bounds) {
    if (typeof point.lat !== "number" || typeof point.lng !== "number") {
      return;
    }
    var icon = L.divIcon({ className: "machine-pin " + className, iconSize: [16, 16] });
    L.marker([point.lat, point.lng], { icon: icon, title: title }).addTo(map).bindPopup(
      document.createTextNode(title)
    );
    bounds.push([point.lat, point.lng]);
  }

  function drawMachineMap() {
    var element = document.getElementById("machine-map");
    if (!element || typeof window.L === "undefined" || element.classList.contains("leaflet-container")) {
      return;
    }
    var data;
    try {
      data = JSON.parse(element.getAttribute("data-map") || "{}");
    } catch (e) {
      return;
    }
    var L = window.L;
    var map = L.map(element, { scrollWheelZoom: false });
    L.tileLayer(element.getAttribute("data-tiles") || "https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
      maxZoom: 19,
      attribution: "&copy; OpenStreetMap"
    }).addTo(map);
    var bounds = [];
    if (data.site) {
      if (data.site.polygon && data.site.polygon.length > 2) {
        L.polygon(data.site.polygon, { color: "#2f6fb0", weight: 2, fillOpacity: 0.08 }).addTo(map);
        data.site.polygon.forEach(function (p) { bounds.push(p); });
      }
      pin(L, map, data.site, "pin-site", "作业场所：" + (data.site.name || ""), bounds);
    }
    if (data.install) {
      pin(L, map, data.install, "pin-install", "芯片安装位置", bounds);
    }
    if (data.device) {
      pin(L, map, data.device, "pin-device", "芯片最后定位" + (data.device.at ? "（" + data.device.at + "）" : ""), bounds);
    }
    if (!bounds.length) {
      element.hidden = true;
      return;
    }
    if (bounds.length === 1) {
      map.setView(bounds[0], 17);
    } else {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 17 });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawMachineMap);
  } else {
    drawMachineMap();
  }
})();
