// The /docs page: Swagger UI over the BFF's OpenAPI document and copies of
// the auth and customer services' documents, chosen with the selector.
(function () {
  'use strict';
  var select = document.getElementById('spec');
  var ui = window.SwaggerUIBundle({
    dom_id: '#swagger-ui',
    url: select.value,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
  select.addEventListener('change', function () {
    ui.specActions.updateUrl(select.value);
    ui.specActions.download(select.value);
  });
}());
